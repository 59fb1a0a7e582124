"""Forms for the back-office actions that need input.

Each action form parses what an agent posted and hands it to one function of
``subscriptions.actions``; it never changes state itself. Whether the move is legal is the
action's business: a form only checks that the input is well formed and belongs to the
subscription (a posted service or device id of another subscription is refused here).
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.widgets import AutocompleteSelect
from django.db.models import Q

from catalogue.models import Distributor, Product, SubscriptionType

from . import actions
from .actions import ItemSpec
from .models import CustomerAccount, InstalledItem, Subscription
from .signals import ActionChange


def distributors():
    # Distributor.__str__ names its provider: fetch it in the same query.
    return Distributor.objects.select_related("provider").order_by("provider__name", "code")


def error_text(form: forms.Form) -> str:
    """All of a form's errors as one line, for a message after a redirect."""
    parts = []
    for name, errors in form.errors.items():
        label = form.fields[name].label if name in form.fields else ""
        text = " ".join(str(e) for e in errors)
        parts.append(f"{label}: {text}" if label else text)
    return " ".join(parts)


class SubscriptionActionForm(forms.Form):
    """An action on one subscription: subclasses declare their inputs and call the action."""

    label = ""
    reason = forms.CharField(max_length=300, required=False)

    def __init__(self, *args, subscription: Subscription, **kwargs):
        super().__init__(*args, **kwargs)
        self.subscription = subscription

    def perform(self, by) -> ActionChange:
        raise NotImplementedError

    def outcome(self, change: ActionChange) -> tuple[int, str]:
        """What the agent is told: (message level, text); a warning when no provider changed."""
        sub = change.subscription
        said = f"{change.provisioning} Subscription {sub.number} is {sub.get_state_display()}."
        if change.request_ids:
            return messages.SUCCESS, f"{self.label}: done, {said[0].lower()}{said[1:]}"
        if change.deferred_to:
            return messages.SUCCESS, f"{self.label}: saved; {said}"
        return messages.WARNING, f"{self.label}: saved, but {said[0].lower()}{said[1:]}"


class TransitionForm(SubscriptionActionForm):
    """A move of the subscription life cycle; ``transition`` is a key of actions.TRANSITIONS."""

    transition = ""

    def perform(self, by) -> ActionChange:
        action = getattr(actions, self.transition)
        return action(self.subscription, by=by, reason=self.cleaned_data["reason"])


def action_label(name: str) -> str:
    return name.replace("_", " ").capitalize()


TRANSITION_FORMS = {
    name: type(
        f"{name.title().replace('_', '')}Form",
        (TransitionForm,),
        {"transition": name, "label": action_label(name)},
    )
    for name in actions.TRANSITIONS
}


class TerminateForm(SubscriptionActionForm):
    label = "Terminate"
    confirm = forms.BooleanField(
        label="Yes, terminate",
        error_messages={"required": "Tick the box to confirm: terminating cannot be undone."},
    )

    def perform(self, by) -> ActionChange:
        return actions.terminate(self.subscription, by=by, reason=self.cleaned_data["reason"])


class ChangeDistributionForm(SubscriptionActionForm):
    label = "Change distribution"
    from_distributor = forms.ModelChoiceField(queryset=Distributor.objects.none(), label="From")
    to_distributor = forms.ModelChoiceField(queryset=Distributor.objects.none(), label="To")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["from_distributor"].queryset = in_use_distributors(self.subscription)
        self.fields["to_distributor"].queryset = distributors()

    def perform(self, by) -> ActionChange:
        data = self.cleaned_data
        return actions.change_distribution(
            self.subscription,
            data["from_distributor"],
            data["to_distributor"],
            by=by,
            reason=data["reason"],
        )


def in_use_distributors(subscription: Subscription):
    """The viewing points the subscription uses now (current services or devices).

    Two subqueries on the subscription's own rows: an OR across joins to services and items
    would join every service of a distributor with every one of its devices.
    """
    services = subscription.services.filter(state__in=actions.LIVE_SERVICE_STATES)
    items = subscription.installed_items.filter(removed_at__isnull=True)
    return distributors().filter(
        Q(pk__in=services.values("distributor_id")) | Q(pk__in=items.values("distributor_id"))
    )


OFFERED_ONLY = "Choose one of this subscription's providers."


def offered_distributors(subscription: Subscription):
    """The viewing points a new service or device may go on: those of the enabled providers
    the subscription is on now (a current service or a device in place); every enabled
    provider's while it is on none. A service on another provider, where the subscription has
    no device, would reach no platform: the trap this avoids."""
    providers = set(in_use_distributors(subscription).values_list("provider_id", flat=True))
    offered = distributors().filter(provider__enabled=True)
    return offered.filter(provider_id__in=providers) if providers else offered


class AddServiceForm(SubscriptionActionForm):
    label = "Add service"
    product = forms.ModelChoiceField(queryset=Product.objects.all())
    distributor = forms.ModelChoiceField(
        queryset=Distributor.objects.none(),
        label="Viewing point",
        error_messages={"invalid_choice": OFFERED_ONLY},
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["distributor"].queryset = offered_distributors(self.subscription)

    def perform(self, by) -> ActionChange:
        data = self.cleaned_data
        return actions.add_service(
            self.subscription, data["product"], data["distributor"], by=by, reason=data["reason"]
        )


class DeviceFields(forms.Form):
    serial_number = forms.CharField(max_length=64)
    ca_id = forms.CharField(label="CA ID", max_length=64)
    product_code = forms.CharField(max_length=32, required=False)
    description = forms.CharField(max_length=200, required=False)


class AddInstalledItemForm(SubscriptionActionForm, DeviceFields):
    label = "Add installed item"
    kind = forms.ChoiceField(choices=InstalledItem.Kind.choices)
    distributor = forms.ModelChoiceField(
        queryset=Distributor.objects.none(),
        label="Viewing point",
        error_messages={"invalid_choice": OFFERED_ONLY},
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["distributor"].queryset = offered_distributors(self.subscription)

    def perform(self, by) -> ActionChange:
        data = self.cleaned_data
        spec = ItemSpec.from_data(data)
        return actions.add_installed_item(self.subscription, spec, by=by, reason=data["reason"])


# --- Per service ----------------------------------------------------------------------------


class ServiceActionForm(SubscriptionActionForm):
    """An action on one service of the subscription; ``action`` names the function to call."""

    action = ""
    service = forms.ModelChoiceField(queryset=None)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["service"].queryset = self.subscription.services.all()

    def perform(self, by) -> ActionChange:
        action = getattr(actions, self.action)
        return action(self.cleaned_data["service"], by=by, reason=self.cleaned_data["reason"])


class StopServiceForm(ServiceActionForm):
    label, action = "Stop service", "stop_service"


class StartServiceForm(ServiceActionForm):
    label, action = "Start service", "start_service"


class RemoveServiceForm(ServiceActionForm):
    label, action = "Remove service", "remove_service"


class RegretSwapForm(ServiceActionForm):
    label, action = "Regret swap", "regret_swap"


class SwapServiceForm(ServiceActionForm):
    label = "Swap service"
    new_product = forms.ModelChoiceField(queryset=Product.objects.all(), label="New product")

    def perform(self, by) -> ActionChange:
        data = self.cleaned_data
        return actions.swap_service(
            data["service"], data["new_product"], by=by, reason=data["reason"]
        )


# --- Per installed item ---------------------------------------------------------------------


class ItemActionForm(SubscriptionActionForm):
    item = forms.ModelChoiceField(queryset=None)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["item"].queryset = self.subscription.installed_items.all()


class RemoveInstalledItemForm(ItemActionForm):
    label = "Remove installed item"

    def perform(self, by) -> ActionChange:
        data = self.cleaned_data
        return actions.remove_installed_item(data["item"], by=by, reason=data["reason"])


class SwapInstalledItemForm(ItemActionForm, DeviceFields):
    label = "Swap installed item"

    def perform(self, by) -> ActionChange:
        data = self.cleaned_data
        return actions.swap_installed_item(
            data["item"],
            data["serial_number"],
            data["ca_id"],
            product_code=data["product_code"],
            description=data["description"],
            by=by,
            reason=data["reason"],
        )


# Every action the subscription page can post, by the name in its URL.
ACTION_FORMS: dict[str, type[SubscriptionActionForm]] = {
    **TRANSITION_FORMS,
    "terminate": TerminateForm,
    "change_distribution": ChangeDistributionForm,
    "add_service": AddServiceForm,
    "add_installed_item": AddInstalledItemForm,
    "stop_service": StopServiceForm,
    "start_service": StartServiceForm,
    "remove_service": RemoveServiceForm,
    "swap_service": SwapServiceForm,
    "regret_swap": RegretSwapForm,
    "remove_installed_item": RemoveInstalledItemForm,
    "swap_installed_item": SwapInstalledItemForm,
}


# --- Become subscriber ------------------------------------------------------------------------


class BecomeSubscriberForm(forms.Form):
    account = forms.ModelChoiceField(
        queryset=CustomerAccount.objects.all(),
        widget=AutocompleteSelect(Subscription._meta.get_field("account"), admin.site),
    )
    subscription_type = forms.ModelChoiceField(queryset=SubscriptionType.objects.all())
    number = forms.CharField(
        max_length=32, required=False, help_text="Leave empty to number the subscription itself."
    )
    reason = forms.CharField(max_length=300, required=False)

    def clean_number(self):
        number = self.cleaned_data["number"].strip()
        if number and Subscription.objects.filter(number=number).exists():
            raise forms.ValidationError(f"Subscription {number} already exists.")
        return number


class ServiceLineForm(forms.Form):
    product = forms.ModelChoiceField(queryset=Product.objects.all())
    distributor = forms.ModelChoiceField(queryset=Distributor.objects.none())

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["distributor"].queryset = distributors()


class ViewingPointForm(forms.Form):
    """The devices of one viewing point: a smartcard and / or a set-top box."""

    distributor = forms.ModelChoiceField(queryset=Distributor.objects.none())
    smartcard_serial = forms.CharField(max_length=64, required=False)
    smartcard_ca_id = forms.CharField(label="Smartcard CA ID", max_length=64, required=False)
    stb_serial = forms.CharField(label="STB serial", max_length=64, required=False)
    stb_ca_id = forms.CharField(label="STB CA ID", max_length=64, required=False)

    DEVICES = (
        (InstalledItem.Kind.SMARTCARD, "smartcard_serial", "smartcard_ca_id"),
        (InstalledItem.Kind.STB, "stb_serial", "stb_ca_id"),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["distributor"].queryset = distributors()

    def clean(self):
        data = super().clean()
        given = 0
        for _kind, serial, ca_id in self.DEVICES:
            if bool(data.get(serial)) != bool(data.get(ca_id)):
                missing = ca_id if data.get(serial) else serial
                self.add_error(missing, "Give both the serial number and the CA ID.")
            given += bool(data.get(serial))
        if not given and not self.errors:
            raise forms.ValidationError("Give a smartcard, a set-top box or both.")
        return data

    def item_specs(self) -> list[ItemSpec]:
        data = self.cleaned_data
        return [
            ItemSpec(kind, data[serial], data[ca_id], data["distributor"])
            for kind, serial, ca_id in self.DEVICES
            if data[serial]
        ]


ServiceLineFormSet = forms.formset_factory(
    ServiceLineForm, extra=3, min_num=1, validate_min=True, max_num=20
)
ViewingPointFormSet = forms.formset_factory(
    ViewingPointForm, extra=2, max_num=actions.MAX_VIEWING_POINTS
)


class BecomeSubscriber:
    """The Become subscriber page: the subscription, its service lines and its devices."""

    def __init__(self, data=None):
        self.form = BecomeSubscriberForm(data)
        self.services = ServiceLineFormSet(data, prefix="services")
        self.viewing_points = ViewingPointFormSet(data, prefix="devices")

    def is_valid(self) -> bool:
        # Validate all three so every error shows at once.
        return all([self.form.is_valid(), self.services.is_valid(), self.viewing_points.is_valid()])

    @property
    def media(self):
        return self.form.media

    def perform(self, by) -> ActionChange:
        data = self.form.cleaned_data
        services = [
            (line["product"], line["distributor"]) for line in self.services.cleaned_data if line
        ]
        items = [
            spec
            for form in self.viewing_points.forms
            if form.has_changed()
            for spec in form.item_specs()
        ]
        return actions.become_subscriber(
            data["account"],
            data["subscription_type"],
            services,
            items,
            number=data["number"] or None,
            by=by,
            reason=data["reason"],
        )
