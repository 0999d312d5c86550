"""The dispatcher: the control loop that turns the ledger's queue into jobs running on hosts.

`loop.Dispatcher` runs the tick; each step of it is a module of its own (`record`, `fence`,
`place`, `launch`, `control`) that takes what it needs as parameters and never imports the
loop; `outcome` holds the rules of a job's and an attempt's life, pure. See
docs/architecture.md.
"""
