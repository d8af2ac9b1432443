"""Forms. Connection forms are built from the provider's own field list."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.models import Group

import providers

from .models import Connection


class ConnectionForm(forms.Form):
    """Label, the provider's options, and its secrets (write-only: never shown again)."""

    label = forms.CharField(max_length=120)

    def __init__(self, provider_name: str, *args: Any, instance: Connection | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.provider_class = providers.get(provider_name)
        self.instance = instance
        if instance is not None:
            self.fields["label"].initial = instance.label
        for spec in self.provider_class.fields:
            if spec.secret:
                replacing = instance is not None
                self.fields[f"secret_{spec.name}"] = forms.CharField(
                    label=f"Replace {spec.label.lower()}" if replacing else spec.label,
                    required=spec.required and not replacing,
                    strip=True,
                    widget=forms.PasswordInput(render_value=False,
                                               attrs={"autocomplete": "off"}),
                    help_text="Leave empty to keep the current one." if replacing else spec.help,
                )
            else:
                current = instance.options.get(spec.name) if instance else None
                self.fields[f"option_{spec.name}"] = forms.CharField(
                    label=spec.label, required=spec.required and not spec.default,
                    initial=current or spec.default, help_text=spec.help,
                )

    def secrets(self) -> dict[str, str]:
        return {
            spec.name: self.cleaned_data[f"secret_{spec.name}"]
            for spec in self.provider_class.fields
            if spec.secret and self.cleaned_data.get(f"secret_{spec.name}")
        }

    def options(self) -> dict[str, str]:
        return {
            spec.name: self.cleaned_data[f"option_{spec.name}"] or spec.default
            for spec in self.provider_class.fields
            if not spec.secret
        }


class ConversationFilter(forms.Form):
    """The conversation list's filter bar; every field optional, bad values are errors."""

    SORTS = {
        "newest": ("-last_message_at", "-id"),
        "oldest": ("last_message_at", "id"),
    }
    STATES = [("", "Any state"), ("present", "Present"), ("erased", "Erased"),
              ("gone", "Gone at provider"), ("soft_deleted", "Soft-deleted at provider"),
              ("archived", "Archived at provider"), ("protected", "Protected (keep-list)")]

    connection = forms.TypedChoiceField(required=False, coerce=int, empty_value=None)
    character = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)
    q = forms.CharField(required=False, max_length=200, label="Text")
    start = forms.DateField(required=False, label="From",
                            widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(required=False, label="To",
                          widget=forms.DateInput(attrs={"type": "date"}))
    state = forms.ChoiceField(required=False, choices=STATES)
    sort = forms.ChoiceField(required=False, choices=[("newest", "Newest first"),
                                                      ("oldest", "Oldest first")])

    def __init__(self, connections: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field: Any = self.fields["connection"]
        field.choices = [("", "All connections")] + [
            (c.pk, str(c)) for c in connections
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("start") and data.get("end") and data["start"] > data["end"]:
            raise forms.ValidationError("The From date is after the To date.")
        return data


class ShareForm(forms.Form):
    """Share a connection with groups its owner belongs to."""

    groups = forms.ModelMultipleChoiceField(
        queryset=Group.objects.none(), required=False, widget=forms.CheckboxSelectMultiple,
        label="Shared with",
    )

    def __init__(self, user: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field: Any = self.fields["groups"]
        field.queryset = user.groups.order_by("name")
