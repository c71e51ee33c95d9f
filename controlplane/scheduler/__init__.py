"""The scheduler: pending pods -> filter and score nodes -> binding."""
