"""Errors whose message is meant for the user (the rule scripts' handling of them is
:mod:`drg_workflow.jobs`)."""


class DrgWorkflowError(ValueError):
    """Bad input or configuration: the message says what is wrong and where."""
