"""Owner rules for the ZenML server: what one student makes, another cannot read, change or delete.

ZenML's open-source server checks no ownership: every user may change or delete every other user's
stacks, components, runs and connectors (point a classmate's experiment tracker at their own server,
and receive the classmate's MLflow password with the next run). ZenML asks an RBAC class about every
object it serves once one is named in ZENML_SERVER_RBAC_IMPLEMENTATION_SOURCE; this is that class:
- an administrator may do anything;
- ZenML lets the owner of an object do anything before asking (objects nobody owns, ZenML's own
  defaults, count as everyone's); the stack makes each user a CI service account `<user>-ci`, whose
  objects are the user's too, and the other way round;
- anyone may read what ZenML shares by name within a project (pipelines, artifacts, models, tags, the
  project, flavors: a student's run of the demo reuses the pipeline a classmate created) and the list of
  service accounts; the versions, runs and everything else are their owner's alone. ZenML checks reading
  an artifact or model version, and lists them, by its artifact or model, which is shared, and lists the links
  of model versions to artifacts and runs unchecked: `_keep_version_checks` makes it check the version itself;
- only an administrator deletes what is shared by name: deleting a pipeline deletes every student's runs
  of it. ZenML would let its owner, without asking: `_keep_admin_checks` makes ZenML ask about those too;
- anyone may create, except projects and service accounts; pruning, backups, sharing are an
  administrator's;
- a teacher (and their CI service account) may read every student's work, as in MLflow: runs, steps, artifact
  and model versions, stacks and components; never their secrets or service connectors, and change nothing
  of theirs. Roles are the stack's record of its users (MLOPS_USERS_TABLE, which the server's database account
  may only read).
Once an RBAC class is set, ZenML also stops checking that only administrators manage users, see other
users and change the server's settings (its paid edition manages users elsewhere). `_keep_admin_checks`
puts those checks back when the class is made, at the server's start.
"""
import os
import re

from sqlalchemy import text
from sqlmodel import Session, and_, col, or_, select

from zenml.exceptions import IllegalOperationError
from zenml.models import (ArtifactVersionFilter, ArtifactVersionResponse, ModelVersionArtifactFilter,
                          ModelVersionFilter, ModelVersionPipelineRunFilter, ModelVersionResponse)
from zenml.zen_server import utils as server_utils
from zenml.zen_server.rbac import utils as rbac_utils
from zenml.zen_server.rbac.models import Action, ResourceType
from zenml.zen_server.rbac.rbac_interface import RBACInterface
from zenml.zen_server.routers import (model_versions_endpoints, secrets_endpoints, server_endpoints,
                                     service_accounts_endpoints, users_endpoints)
from zenml.zen_stores.schemas import BaseSchema, UserSchema

SHARED = {ResourceType.PIPELINE, ResourceType.ARTIFACT, ResourceType.MODEL, ResourceType.TAG,
          ResourceType.PROJECT, ResourceType.FLAVOR, ResourceType.SERVICE_ACCOUNT}
NOT_CREATED_BY_USERS = {ResourceType.PROJECT, ResourceType.SERVICE_ACCOUNT}
ADMIN_ACTIONS = {Action.PRUNE, Action.BACKUP_RESTORE, Action.SHARE}
# What a teacher reads of every student's: their work, not their credentials (secrets, service connectors).
TEACHER_READS = SHARED | {ResourceType.PIPELINE_RUN, ResourceType.PIPELINE_SNAPSHOT, ResourceType.PIPELINE_BUILD,
                          ResourceType.ARTIFACT_VERSION, ResourceType.MODEL_VERSION, ResourceType.RUN_METADATA,
                          ResourceType.RUN_TEMPLATE, ResourceType.SCHEDULE, ResourceType.STACK,
                          ResourceType.STACK_COMPONENT, ResourceType.CODE_REPOSITORY, ResourceType.DEPLOYMENT,
                          ResourceType.SERVICE}
CI_SUFFIX = "-ci"
NOBODY = object()  # the owner of a kind of object that has no owner column


class OwnerRBAC(RBACInterface):
    def __init__(self):
        self.users_table = os.environ.get("MLOPS_USERS_TABLE", "")
        if self.users_table and not re.fullmatch(r"\w+\.\w+", self.users_table):
            raise ValueError(f"MLOPS_USERS_TABLE must name a table as schema.table: {self.users_table!r}")
        _keep_admin_checks()
        _keep_version_checks()

    def check_permissions(self, user, resources, action):
        if user.is_admin:
            return {resource: True for resource in resources}
        group = _group(user)
        reads_all = action == Action.READ and self.teacher(user)
        owners = _owners({resource for resource in resources if resource.id is not None})
        return {resource: (reads_all and ResourceType(resource.type) in TEACHER_READS)
                or _allowed(resource, action, group, owners.get(resource.id, NOBODY)) for resource in resources}

    def list_allowed_resource_ids(self, user, resource, action):
        every, ids = self.allowed_ids(user, ResourceType(resource.type), action)
        return every, [str(id_) for id_ in ids]

    def allowed_ids(self, user, kind, action):
        """(whether the user may act on every object of the kind, else the ids of those they may)"""
        if user.is_admin or (action == Action.READ and (
                kind in SHARED or (kind in TEACHER_READS and self.teacher(user)))):
            return True, []
        schema = _schema(kind)
        if schema is None or action != Action.READ:
            return False, []
        with Session(server_utils.zen_store().engine) as session:
            ids = session.exec(select(schema.id).where(or_(col(schema.user_id).in_(_group(user)),
                                                           col(schema.user_id).is_(None)))).all()
        return False, ids

    def update_resource_membership(self, sharing_user, resource, actions, user_id=None, team_id=None):
        raise IllegalOperationError("This server does not share objects between users.")

    def delete_resources(self, resources):
        """Nothing to do: no membership is kept, the owner is the object's own user column."""

    def teacher(self, user):
        """Whether the stack records the user, or the person of a `<user>-ci` service account, as a teacher."""
        person = user.name.removesuffix(CI_SUFFIX) if user.is_service_account else user.name
        if not self.users_table or (person == user.name and user.is_service_account):
            return False
        with Session(server_utils.zen_store().engine) as session:
            role = session.execute(text(f"SELECT role FROM {self.users_table} WHERE username = :name"),
                                   {"name": person}).scalar()
        return role == "teacher"


def _allowed(resource, action, group, owner):
    kind = ResourceType(resource.type)
    if action in ADMIN_ACTIONS:
        return False
    if resource.id is None:  # the kind itself: list it, create one
        return action == Action.READ or (action == Action.CREATE and kind not in NOT_CREATED_BY_USERS)
    if action == Action.READ and (kind in SHARED or owner is None):
        return True
    if action == Action.DELETE and kind in SHARED:
        return False
    return owner in group


def _group(user):
    """The ids of the user and their partner: the CI service account `<user>-ci` of a person, the person
    of a `<user>-ci` service account."""
    if user.is_service_account:
        partner, partner_is_account = user.name.removesuffix(CI_SUFFIX), False
        if partner == user.name:
            return [user.id]
    else:
        partner, partner_is_account = user.name + CI_SUFFIX, True
    with Session(server_utils.zen_store().engine) as session:
        found = session.exec(select(UserSchema.id).where(UserSchema.name == partner,
                                                         UserSchema.is_service_account == partner_is_account)).all()
    return [user.id, *found]


def _schema(kind):
    """The table of a kind of object, where it has an owner column."""
    try:
        schema = rbac_utils.get_schema_for_resource_type(kind)
    except KeyError:
        return None
    return schema if hasattr(schema, "user_id") else None


def _owners(resources):
    """{object id: its owner's id (None for ZenML's own)}, one query per kind."""
    owners = {}
    with Session(server_utils.zen_store().engine) as session:
        for kind in {ResourceType(resource.type) for resource in resources}:
            schema = _schema(kind)
            ids = [resource.id for resource in resources if resource.type == kind]
            if schema is not None:
                owners.update(session.exec(select(schema.id, schema.user_id).where(col(schema.id).in_(ids))).all())
    return owners


def _admin_only(admin_status, action=None):
    """ZenML's verify_admin_status_if_no_rbac, checking whether RBAC is on or not."""
    if admin_status is False:
        raise IllegalOperationError(f"Only admin users can perform `{(action or 'this action').strip('`')}`")


def _without_rbac():
    """The server's configuration as its users and settings endpoints read it, which skip their admin
    checks (non-admins list only themselves, only admins change the settings) when RBAC is on."""
    return server_utils.server_config().model_copy(update={"rbac_implementation_source": None})


_zenml_is_owned = rbac_utils.is_owned_by_authenticated_user


def _owned_unless_shared(resource):
    """ZenML's is_owned_by_authenticated_user (owners are not asked about), but for what is shared by name."""
    if isinstance(resource, BaseSchema):
        kind = rbac_utils.get_resource_type_for_schema(resource)
    else:
        kind = rbac_utils.get_resource_type_for_model(resource)
    return kind not in SHARED and _zenml_is_owned(resource)


def _keep_admin_checks():
    rbac_utils.is_owned_by_authenticated_user = _owned_unless_shared
    for module in (users_endpoints, service_accounts_endpoints, secrets_endpoints):
        module.verify_admin_status_if_no_rbac = _admin_only
    for module in (users_endpoints, server_endpoints):
        module.server_config = _without_rbac


_zenml_surrogate = rbac_utils.get_surrogate_permission_model_for_model
_zenml_dehydrate = model_versions_endpoints.dehydrate_response_model
# The lists of versions (ZenML limits them to the versions of the artifacts and models one may read): their kind,
# ZenML's configure_rbac. The lists of links to model versions (ZenML does not limit them): ZenML's
# generate_rbac_filter. Kept at import, so that each server start wraps ZenML's own.
VERSION_LISTS = {filter_class: (kind, filter_class.configure_rbac) for filter_class, kind in
                 ((ArtifactVersionFilter, ResourceType.ARTIFACT_VERSION), (ModelVersionFilter, ResourceType.MODEL_VERSION))}
MODEL_VERSION_LINKS = {filter_class: filter_class.generate_rbac_filter
                       for filter_class in (ModelVersionArtifactFilter, ModelVersionPipelineRunFilter)}


def _version_itself(model, action):
    """ZenML's get_surrogate_permission_model_for_model, but a version stands for itself, not for its artifact
    or model."""
    if isinstance(model, (ArtifactVersionResponse, ModelVersionResponse)):
        return model
    return _zenml_surrogate(model, action)


def _model_version_checked(model, permissions=None):
    """The model versions endpoints' dehydrate_response_model, after checking that the user may read the version:
    reading one by id checks only its model."""
    if isinstance(model, ModelVersionResponse):
        rbac_utils.verify_permission_for_model(model, action=Action.READ)
    return _zenml_dehydrate(model, permissions)


def _readable_ids(kind):
    """The ids of the objects of a kind that the request's user may read, or None for every one."""
    every, ids = server_utils.rbac().allowed_ids(server_utils.get_auth_context().user, kind, Action.READ)
    return None if every else ids


def _readable_versions(kind, zenml_configure):
    """A version filter's configure_rbac, limited to the versions the user may read instead of those of the
    artifacts or models the user may read."""
    def configure_rbac(self, authenticated_user_id, **_parents):
        zenml_configure(self, authenticated_user_id, id=_readable_ids(kind))
    return configure_rbac


def _links_of_readable_versions(zenml_filter):
    """A model version link filter's generate_rbac_filter, limited to the links of model versions the user may
    read (the endpoints listing them ask no one)."""
    def generate_rbac_filter(self, table):
        rows = zenml_filter(self, table)
        versions = _readable_ids(ResourceType.MODEL_VERSION)
        if versions is None:
            return rows
        readable = col(table.model_version_id).in_(versions)
        return readable if rows is None else and_(rows, readable)
    return generate_rbac_filter


def _keep_version_checks():
    rbac_utils.get_surrogate_permission_model_for_model = _version_itself
    model_versions_endpoints.dehydrate_response_model = _model_version_checked
    for filter_class, (kind, zenml_configure) in VERSION_LISTS.items():
        filter_class.configure_rbac = _readable_versions(kind, zenml_configure)
    for filter_class, zenml_filter in MODEL_VERSION_LINKS.items():
        filter_class.generate_rbac_filter = _links_of_readable_versions(zenml_filter)
