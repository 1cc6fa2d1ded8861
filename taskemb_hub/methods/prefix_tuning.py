"""Prefix tuning: trainable key/value prefixes in every attention layer (Li & Liang 2021).

peft's own forward for encoder models looks for a `past_key_values` argument that
transformers 5 renamed to `cache`; we run the same computation through the new name: the
peft-built prefix cache goes into the backbone, the attention mask gains the prefix, and the
task head runs on the backbone output as the model's own forward would.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers.modeling_outputs import QuestionAnsweringModelOutput, SequenceClassifierOutput

from ..errors import AdapterError
from ._registry import register_method
from ._virtual_tokens import VirtualTokenMethod


@register_method
class PrefixTuningMethod(VirtualTokenMethod):
    name = "prefix"
    peft_type = "PREFIX_TUNING"
    config_class_name = "PrefixTuningConfig"
    default_learning_rate = 1e-2

    def forward(self, model, batch):
        peft_model = getattr(model, "module", model)  # unwrap DDP
        base = peft_model.base_model
        backbone_name = getattr(base, "base_model_prefix", "bert")
        backbone = getattr(base, backbone_name, None)
        if backbone is None:
            raise AdapterError(f"Prefix tuning here supports encoder models with a .{backbone_name} backbone.")
        input_ids = batch["input_ids"]
        n_virtual = peft_model.active_peft_config.num_virtual_tokens
        cache = peft_model.get_prompt(batch_size=input_ids.shape[0])
        mask = batch.get("attention_mask", torch.ones_like(input_ids))
        mask = torch.cat([torch.ones(mask.shape[0], n_virtual, dtype=mask.dtype, device=mask.device), mask], 1)
        outputs = backbone(input_ids=input_ids, attention_mask=mask, token_type_ids=batch.get("token_type_ids"),
                           cache=cache)
        if hasattr(base, "qa_outputs"):
            logits = base.qa_outputs(outputs.last_hidden_state)
            start, end = logits.split(1, dim=-1)
            start, end = start.squeeze(-1).contiguous(), end.squeeze(-1).contiguous()
            loss = None
            if "start_positions" in batch:
                loss = (F.cross_entropy(start, batch["start_positions"]) + F.cross_entropy(end, batch["end_positions"])) / 2
            return QuestionAnsweringModelOutput(loss=loss, start_logits=start, end_logits=end)
        pooled = outputs.pooler_output if outputs.pooler_output is not None else outputs.last_hidden_state[:, 0]
        logits = base.classifier(base.dropout(pooled) if hasattr(base, "dropout") else pooled)
        loss = None
        if "labels" in batch:
            labels = batch["labels"]
            loss = F.mse_loss(logits.squeeze(-1), labels.float()) if logits.shape[-1] == 1 else F.cross_entropy(logits, labels)
        return SequenceClassifierOutput(loss=loss, logits=logits)
