"""Economics: the package of prices, the cost of every attempt, roll-ups, idle cost, and the console's numbers.

Prices. A host has either its own prices or the lab defaults (`prices` rows with host NULL). Each
row of the `prices` table is a complete snapshot of one scope's prices from `effective_from` on,
so a change applies from the moment it is made and history is never rewritten. At any instant a
host's allocation prices (flat hourly price, CPU core-hour, GPU-hour, GB-hour of memory) come from
its own latest row when that row sets any of them, else from the lab default; its electricity
price (per kWh of measured GPU power) comes from its own row when set there, else from the lab.

Cost of an attempt (the same rule as `scheduler.model.allocation_price_per_hour`): per-resource
prices are charged per unit held (a GPU share as its memory fraction of one GPU), a flat host price
by the attempt's dominant share of the host (max of its CPU, memory and GPU fractions, at most 1),
a price per node-hour by the nodes Slurm allocated to it; what it holds is what its job asked,
except what Slurm allocated where it rounded that up (`prices.charged_resources`). Integrated over
[its charge's start, ended_at or now] with the prices in force at each moment: its start, before
that an SSH attempt's intent, never a Slurm attempt's time before Slurm started it
(`costs.charged_from`); plus its
measured energy: the mean power of the GPUs it held (from `samples`) x its duration x the share of
each GPU it held, charged at the electricity price. When an attempt is split (by price period,
day or report window) its energy is spread evenly over its time. A lost attempt is charged too.

Idle cost of a host: its whole price (the flat price plus per-resource prices x capacity) x time
since it was added, minus the allocation cost of the attempts it ran: capacity not allocated x
price x time. Reports leave out the electricity idle GPUs draw (splitting a GPU's measured power
between the hours jobs held it and the rest needs the samples of those hours, not a day's mean);
the console's idle rate now (`idle_rate`) does add the latest power of GPUs no job holds.

Everything is aggregated in SQL over `attempts`, `jobs`, `hosts` and `prices`; the price periods
and report buckets go in small TEMP tables of the reading connection.

Modules, each importing only those above it (no cycle; nothing is re-exported here):
- `prices`: price history, currency, cost weight, calendar days;
- `energy`: measured GPU energy of attempts;
- `slices`: the cost engine (attempts x price periods x buckets);
- `rollup`: the daily roll-up of settled days;
- `report`: cost reports by user, project, host, job or day;
- `costs`: an attempt's cost, what runs now costs per hour, the console's numbers;
- `budgets`, `waste`, `stranded`, `replay`: budgets and holds, idle and foreign GPUs, capacity
  stranded now, what-if replay of the lab's history;
- `api`: what `service.py` offers of all this, as plain data.

No raw SQL here: the economics call the ledger's named methods (`lepton_tui.ledger_econ`,
`ledger_econ_store`, with the cost engine's SQL text in `ledger_econ_sql`).
"""
