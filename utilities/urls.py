from django.urls import path

from . import api

urlpatterns = [
    path("", api.UtilitiesView.as_view(), name="utilities"),
    path("<str:code>/", api.RunUtilityView.as_view(), name="utility-run"),
]
