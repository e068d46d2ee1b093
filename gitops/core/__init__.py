"""The pure core: the model, the plan and the planner. No docker, git, network, sqlite or clock.

Everything here is a function of its arguments, so the same manifests and the same observed state
always give the same plan (snapshot-tested). ``ports`` names what the engine needs from the edges.
"""
