"""The SD-LoRA generator adapter (Stable Diffusion 1.5 + LoRA): see :mod:`generators.sd_lora.adapter`.

Nothing is imported here so that ``import generators.sd_lora`` stays cheap (no torch, no diffusers).
"""
