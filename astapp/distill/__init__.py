"""Distillation (issue 28): a finished run teaches a small AST student, which becomes a normal run folder."""
