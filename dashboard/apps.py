from django.apps import AppConfig


class DashboardConfig(AppConfig):
    name = "dashboard"
    verbose_name = "Lethe"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in, user_login_failed

        from .team.login import on_sign_in_failed, on_signed_in

        user_logged_in.connect(on_signed_in, dispatch_uid="lethe-audit-sign-in")
        user_login_failed.connect(on_sign_in_failed, dispatch_uid="lethe-audit-sign-in-failed")
