"""The run-time process of ``edge-agent run``: the validated config, handed over by the validating
process through an inherited descriptor (:mod:`agent.runtime.handoff`), runs here in the same PID
(``os.execv``, :mod:`agent.runtime.start`) under ``python -OO`` without the command line (click), the
config loader or anything else only validation needs. ``python -m agent.runtime`` is its entry."""

EXEC_ENV = "EDGE_AGENT_EXEC"  # "0": `run` runs the agent in its validating process, without handing over
