"""The console's screens (overview, hosts, queue, job, cost, scheduler) and its modals."""
