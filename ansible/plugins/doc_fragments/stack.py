def _attributes(diff_mode):
    return f"""
attributes:
  check_mode:
    description: Can run in check mode and report what would change without changing anything.
    support: full
  diff_mode:
    description: Returns the state before and after in C(diff) when run in diff mode.
    support: {diff_mode}
  idempotent:
    description: A second run with the same options reports no change.
    support: full
"""


class ModuleDocFragment:
    """What every module of the stack declares: use C(stack.attributes), or C(stack.attributes_without_diff)."""
    ATTRIBUTES = _attributes("full")
    ATTRIBUTES_WITHOUT_DIFF = _attributes("none")
