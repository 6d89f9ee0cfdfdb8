"""Local mode: runtime processes, a weighted HTTP router and a load generator on one machine."""
