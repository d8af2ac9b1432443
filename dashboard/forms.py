"""Forms. Connection forms are built from the provider's own field list."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib.auth.models import Group

import providers

from .models import Character, Connection, RetentionPolicy
from .models.findings import Kind

LABEL_LENGTH = Connection._meta.get_field("label").max_length or 120


def connection_problems(provider_class: type[providers.Provider], label: str,
                        options: dict[str, str]) -> dict[str, str]:
    """What is wrong with a connection's label and options, by field name ("label" or the
    option's), so that the form and `manage.py connect` refuse the same things."""
    problems: dict[str, str] = {}
    label = label.strip()
    if not label:
        problems["label"] = "Give the connection a name."
    elif len(label) > LABEL_LENGTH:
        problems["label"] = f"At most {LABEL_LENGTH} characters."
    for spec in provider_class.fields:
        value = (options.get(spec.name) or "").strip()
        if spec.secret or not value or not spec.name.endswith("_url"):
            continue
        try:
            provider_class.check_address(value, tuple(settings.LETHE_PROVIDER_HOSTS))
        except providers.PermanentError as exc:
            problems[spec.name] = str(exc)
    return problems


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
                    label=f"New {spec.label}" if replacing else spec.label,
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

        if any(spec.secret for spec in self.provider_class.fields):
            self.fields["skip_check"] = forms.BooleanField(
                required=False, label="Save without checking",
                help_text="A new key is saved once the provider accepts it; tick this to "
                          "save it even if the provider cannot be reached now.")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        options = {spec.name: data.get(f"option_{spec.name}") or ""
                   for spec in self.provider_class.fields if not spec.secret}
        for name, problem in connection_problems(self.provider_class, data.get("label", "x"),
                                                 options).items():
            self.add_error(name if name == "label" else f"option_{name}", problem)
        return data

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
    """The conversation list's filter bar; every field optional, bad values are errors
    (and then nothing is listed). The character's choices follow the connection: a
    character of another connection is dropped, and `dropped_character` says why."""

    SORTS = [("-last", "Newest first"), ("last", "Oldest first"),
             ("title", "Title A–Z"), ("-title", "Title Z–A"),
             ("character", "Character A–Z"), ("-character", "Character Z–A"),
             ("-messages", "Most messages"), ("messages", "Fewest messages"),
             ("-first", "Started most recently"), ("first", "Started longest ago")]
    # Names the sort had before it covered every column; old links keep working.
    SORT_ALIASES = {"newest": "-last", "oldest": "last"}
    STATES = [("", "Any state"), ("present", "Present"), ("erased", "Erased"),
              ("gone", "Gone at provider"), ("soft_deleted", "Soft-deleted at provider"),
              ("archived", "Archived at provider"), ("protected", "Protected (keep-list)")]
    # The fields that choose conversations (the sort only orders them).
    FILTERS = ("connection", "character", "q", "start", "end", "state")

    connection = forms.TypedChoiceField(required=False, coerce=int, empty_value=None)
    character = forms.TypedChoiceField(required=False, coerce=int, empty_value=None)
    q = forms.CharField(required=False, max_length=200, label="Text")
    start = forms.DateField(required=False, label="From",
                            widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(required=False, label="To",
                          widget=forms.DateInput(attrs={"type": "date"}))
    state = forms.ChoiceField(required=False, choices=STATES)
    sort = forms.ChoiceField(required=False, choices=SORTS)

    def __init__(self, connections: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        visible = list(connections)
        field: Any = self.fields["connection"]
        field.choices = [("", "All connections")] + [(c.pk, str(c)) for c in visible]
        chosen = self._chosen(visible)
        characters = Character.objects.filter(
            connection__in=[chosen] if chosen else visible).select_related("connection")
        # With several connections in view, the connection tells same-named characters apart.
        named = (lambda ch: ch.name) if chosen or len(visible) < 2 else (
            lambda ch: f"{ch.name} ({ch.connection})")
        field = self.fields["character"]
        field.choices = [("", "All characters")] + [
            (ch.pk, named(ch)) for ch in characters.order_by("name", "id")]
        self.dropped_character = ""
        if self.is_bound:
            self._drop_foreign_character(field.choices, visible)
            if self.data.get("sort") in self.SORT_ALIASES:
                self._replace("sort", self.SORT_ALIASES[self.data["sort"]])

    def _replace(self, name: str, value: str) -> None:
        source: Any = self.data
        data = source.copy()  # a QueryDict is immutable; its copy is not
        data[name] = value
        self.data = data

    def _chosen(self, visible: list[Connection]) -> Connection | None:
        raw = str(self.data.get("connection") or "") if self.is_bound else ""
        return next((c for c in visible if str(c.pk) == raw), None)

    def _drop_foreign_character(self, choices: list[tuple[Any, str]],
                                visible: list[Connection]) -> None:
        """A character that is not among the choices (it belongs to another connection,
        or to none the person can see) is removed from the filter, and said so."""
        raw = str(self.data.get("character") or "")
        if not raw or raw in {str(pk) for pk, _ in choices}:
            return
        self._replace("character", "")
        other = Character.objects.filter(
            pk=int(raw) if raw.isdigit() else 0, connection__in=visible).first()
        chosen = self._chosen(visible)
        self.dropped_character = (
            f"{other.name} is not a character of {chosen}" if other and chosen
            else "no character you can see has that id")

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


class PolicyForm(forms.ModelForm):  # type: ignore[type-arg]
    SCOPED = ("provider", "connection", "character")  # each named after the scope using it
    provider = forms.ChoiceField(required=False, choices=[("", "—")] + [
        (name, cls.label) for name, cls in providers.REGISTRY.items()])

    class Meta:
        model = RetentionPolicy
        fields = ["name", "scope", "provider", "connection", "character", "older_than_days",
                  "keywords", "keep_keywords", "finding_kind", "mode", "every_hours",
                  "enabled"]
        labels = {"older_than_days": "Erase conversations older than (days)",
                  "finding_kind": "Only messages holding a finding of this kind (optional)",
                  "keywords": "Only those mentioning (one phrase a line, optional)",
                  "keep_keywords": "Never those mentioning (one phrase a line, optional)",
                  "every_hours": "Run every (hours)"}
        widgets = {"keywords": forms.Textarea(attrs={"rows": 3}),
                   "keep_keywords": forms.Textarea(attrs={"rows": 3})}

    def __init__(self, user: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        visible = Connection.objects.visible_to(user)
        self.fields["connection"].queryset = visible  # type: ignore[attr-defined]
        self.fields["character"].queryset = Character.objects.filter(  # type: ignore[attr-defined]
            connection__in=visible).select_related("connection")
        self.fields["older_than_days"].min_value = 1  # type: ignore[attr-defined]
        self.fields["every_hours"].min_value = 1  # type: ignore[attr-defined]
        # Each of these is used by one scope only: the page shows it for that scope (lethe.js
        # hides the others; without script every field shows with this line).
        for name in self.SCOPED:
            self.fields[name].help_text = (
                f"Used only when the scope is “{RetentionPolicy.Scope(name).label}”.")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        scope = data.get("scope")
        needed = {"provider": "provider", "connection": "connection",
                  "character": "character"}.get(str(scope))
        if needed and not data.get(needed):
            self.add_error(needed, f"Choose the {needed} this policy covers.")
        # Only the field the scope names is kept, so the policy means one thing.
        for name in ("provider", "connection", "character"):
            if name != needed:
                data[name] = "" if name == "provider" else None
        if (data.get("older_than_days") or 0) < 1:
            self.add_error("older_than_days", "At least one day.")
        return data


class FindingFilter(forms.Form):
    """The Findings screen's filter; the same data picks what "Erase these messages" takes."""

    connection = forms.TypedChoiceField(required=False, coerce=int, empty_value=None)
    kind = forms.ChoiceField(required=False, choices=[("", "Any kind"), *Kind.choices])
    character = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)
    start = forms.DateField(required=False, label="From",
                            widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(required=False, label="To",
                          widget=forms.DateInput(attrs={"type": "date"}))
    dismissed = forms.BooleanField(required=False, label="Dismissed ones instead")

    def __init__(self, connections: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field: Any = self.fields["connection"]
        field.choices = [("", "All connections")] + [(c.pk, str(c)) for c in connections]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("start") and data.get("end") and data["start"] > data["end"]:
            raise forms.ValidationError("The From date is after the To date.")
        return data
