from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api_permissions import RolePermission
from providers.models import ProvisioningRequest


class WaitingView(APIView):
    """How many requests wait for the example platform: for whoever may read requests."""

    permission_classes = [RolePermission]

    def permission_for(self, request) -> str:
        return "providers.view_provisioningrequest"

    @extend_schema(
        responses=inline_serializer("ExampleWaiting", {"pending": serializers.IntegerField()})
    )
    def get(self, request):
        pending = ProvisioningRequest.objects.filter(
            provider__type="example", state=ProvisioningRequest.State.PENDING
        ).count()
        return Response({"pending": pending})
