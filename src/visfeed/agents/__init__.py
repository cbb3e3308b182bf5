"""The optimization graph (LangGraph), its nodes, prompts, the mutation agent and the runner.

Entry points: :func:`visfeed.agents.run.optimize`, :func:`visfeed.agents.run.resume`,
:func:`visfeed.agents.graph.build_graph`; what a run writes is read back with :mod:`visfeed.state.rundir`.
"""
