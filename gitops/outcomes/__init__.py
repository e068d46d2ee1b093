"""Outcomes where people look: commit statuses on the forge (statuses), notifications (notify) and the events
both are made of (events). The daemon hands them each pass; none of them may block or fail a pass."""
