"""Prompt tuning: trainable virtual tokens prepended to the input embeddings (Lester et al. 2021)."""

from ._registry import register_method
from ._virtual_tokens import VirtualTokenMethod


@register_method
class PromptTuningMethod(VirtualTokenMethod):
    name = "prompt"
    peft_type = "PROMPT_TUNING"
    config_class_name = "PromptTuningConfig"
    default_learning_rate = 3e-2
