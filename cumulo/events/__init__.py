"""Events: the CloudEvent value, filters, delivery policy, the bus and the dispatcher."""
