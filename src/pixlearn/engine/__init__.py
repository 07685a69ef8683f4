"""The training engine shared by every task: time budgets, progress, resume/extend and the LR finder.

Modules load lazily (``from pixlearn.engine.budget import TimeBudget``); the engine imports no task.
"""
