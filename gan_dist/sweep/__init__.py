"""`gan sweep`: a grid of `gan train` runs, as one Slurm job array or on this machine.

    grid.py      option names, typed values, the points of the grid and their run names
    spec.py      the sweep folder: sweep.json (grid, points, resolved options), the points'
                 `gan train` arguments, submissions.jsonl
    state.py     each point's state from its run directory and the Slurm queue; what to run
    slurm.py     one `sbatch --array` of slurm/train.sh; the queue, read with squeue
    local.py     the points on this machine, a few at a time, the cores split between them
    task.py      what slurm/train.sh runs for one array task (the point's train arguments)
    commands.py  `gan sweep NAME` and `gan sweep status NAME`, as plain functions
    cli.py       the typer group: `gan sweep NAME ...` (default command) and `status`

Torch-free: a point trains in its own `gan train` process.
"""
