"""Support staff's view of accounts: search by email; profiles editable, passwords never shown."""

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm

from accounts.models import Client, Company, User


class UserCreationForm(AdminUserCreationForm):
    class Meta:
        model = User
        fields = ("email", "kind")


class UserEditForm(UserChangeForm):
    class Meta:
        model = User
        fields = "__all__"


class ClientInline(admin.StackedInline):
    model = Client
    can_delete = False


class CompanyInline(admin.StackedInline):
    model = Company
    can_delete = False


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    form = UserEditForm
    add_form = UserCreationForm
    ordering = ("-date_joined",)
    list_display = ("email", "kind", "is_active", "is_staff", "date_joined", "last_login")
    list_filter = ("kind", "is_active", "is_staff")
    search_fields = ("email",)
    readonly_fields = ("date_joined", "last_login")
    fieldsets = (
        (None, {"fields": ("email", "password", "kind")}),
        ("Status", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Dates", {"fields": ("date_joined", "last_login")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "kind", "password1", "password2")}),)
    filter_horizontal = ("groups", "user_permissions")

    def get_inlines(self, request, obj):
        if obj is None:
            return []
        return [
            inline
            for inline, kind in ((ClientInline, User.Kind.CLIENT), (CompanyInline, User.Kind.COMPANY))
            if obj.kind == kind
        ]


@admin.register(Client)
class ClientAdmin(admin.ModelAdmin):
    list_display = ("user", "first_name", "last_name", "phone_number")
    search_fields = ("user__email", "first_name", "last_name", "phone_number")
    list_select_related = ("user",)
    readonly_fields = ("user",)

    def has_add_permission(self, request):
        return False  # accounts are opened through signup, which creates user and profile together


@admin.register(Company)
class CompanyAdmin(admin.ModelAdmin):
    list_display = ("name", "user", "url", "phone_number")
    search_fields = ("name", "user__email", "url")
    list_select_related = ("user",)
    readonly_fields = ("user",)

    def has_add_permission(self, request):
        return False
