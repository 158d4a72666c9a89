"""Use cases. Each takes the route's session (the route owns the transaction) and raises
kfpd.domain.errors on bad input; none of them commits."""
