"""The facts everything reads: the knob table, the plan of cells (matrix), scenarios, the analytic
ceilings (model), the result schema and the run-folder store. Imports nothing else from harness."""
