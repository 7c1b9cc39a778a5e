"""The controller-manager and the scheduler: API clients (api.client only) that drive objects toward their spec."""
