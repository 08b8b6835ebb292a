"""Diffusion core: forward processes, reverse dynamics, integrators and time grids."""
from probkit.diffusion.integrators import (INTEGRATORS, Integrator, IntegratorState, SampleResult, integrate,
                                           make_integrator, sample)
from probkit.diffusion.schedules import EDM, GRIDS, VE, VP, Process, VPCosine, time_grid
from probkit.diffusion.sde import denoise, euler_maruyama_step, reverse_drift

__all__ = [
    "Process", "VP", "VPCosine", "VE", "EDM", "time_grid", "GRIDS",
    "reverse_drift", "euler_maruyama_step", "denoise",
    "INTEGRATORS", "Integrator", "IntegratorState", "SampleResult", "make_integrator", "integrate", "sample",
]
