"""The case engine shared by every kind of case (12345 work orders first; mediation cases,
disclosure requests and proposals later).

- Workflows are data (``workflows/<case_type>.yaml``, overridable per city in the data
  directory): states, actions, who may take each action, target states, which stage clock
  runs in each state (or that it is paused), and the time limits per category x urgency x
  stage, in minutes, working hours or working days counted from the next day.
- Every transition is a compare-and-set on the case's status and version, writes a
  timeline event and an audit row in the same transaction, and moves the stage clock.
- The worker raises yellow warnings, red overdue lights and escalations from the clocks.

``casework`` imports ``kernel`` and ``org`` only.
"""
