from accounts import apis
from wallet_service.api.routing import endpoint

urlpatterns = [
    endpoint("client/signup", apis.ClientSignupApi.as_view(), name="client-signup"),
    endpoint("client/login", apis.ClientLoginApi.as_view(), name="client-login"),
    endpoint("client/logout", apis.LogoutApi.as_view(), name="client-logout"),
    endpoint("company/signup", apis.CompanySignupApi.as_view(), name="company-signup"),
    endpoint("company/login", apis.CompanyLoginApi.as_view(), name="company-login"),
    endpoint("company/logout", apis.LogoutApi.as_view(), name="company-logout"),
]
