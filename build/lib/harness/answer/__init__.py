"""Reads only finished run folders, never runs anything: aggregate (repeats → intervals), recommend
(the SLO rule), compare (two runs) and the article's claims (registry, evidence, deciders)."""
