from django.urls import path

from . import api

urlpatterns = [
    path("pending/", api.PendingView.as_view(), name="generic-pending"),
    path("responses/", api.ResponsesView.as_view(), name="generic-responses"),
]
