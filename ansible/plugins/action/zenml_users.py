"""The zenml_users module, with the ZenML library imported once per run instead of once per task.

Importing the ZenML client takes about 3 s here (mostly pydantic building zenml.models). On Mitogen (the strategy of
ansible.cfg) each task of a module with the repository's module_utils runs in a process forked from one "fork
parent" per host: the library is imported there first, once, and every later task's process inherits it. A user's
add or removal runs the module twice, the integration target a dozen times. Importing it creates no configuration,
file or thread; the module sets its own configuration folder before it uses the library, as before. Without Mitogen
(ansible.builtin.linear) the module runs as it is.
"""
from ansible.plugins.action.normal import ActionModule as Normal

# Run in the fork parent, where Mitogen leaves no stdout or stderr (ZenML's logging binds one at import). The
# settings are the module's own defaults, read at import.
PRELOAD = """
import os, sys
sys.stdout = sys.stdout or open(os.devnull, "w")
sys.stderr = sys.stderr or open(os.devnull, "w")
os.environ.setdefault("ZENML_ANALYTICS_OPT_IN", "false")
os.environ.setdefault("ZENML_LOGGING_VERBOSITY", "ERROR")
import zenml.models, zenml.zen_stores.rest_zen_store
"""


class ActionModule(Normal):
    def run(self, tmp=None, task_vars=None):
        if hasattr(self._connection, "get_chain"):  # Mitogen's connection; a second import is a lookup
            self._connection.get_chain(use_fork=True).call(exec, PRELOAD)
        return super().run(tmp, task_vars)
