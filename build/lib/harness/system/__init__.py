"""The processes: spawning and stopping children (procs), the reaper that outlives a killed harness,
leftover stops, preflight checks, the upstream capacity burst and the reuseport launcher."""
