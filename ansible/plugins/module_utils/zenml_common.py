"""Connection options shared by the zenml_* modules (ZenML's REST store)."""


def zenml_argument_spec(**options):
    """The module's own options plus the connection options documented in the zenml doc fragment."""
    return dict(
        zenml_url=dict(type="str", required=True),
        zenml_username=dict(type="str", required=True),
        zenml_password=dict(type="str", required=True, no_log=True),
        **options)
