"""Quantization: weights in 8 and 4 bits (int8 per channel, ggml's Q8_0 and Q4_0), the
layers and models that keep them compact, LLM.int8()'s mixed-precision product, and
LoRA over a quantized base. See docs/quantization.md.

    from numpyllm.quantize import quantize
    model = quantize(model, "q4_0")          # every projection, 4.5 bits per weight
    model = quantize(model, "q4_0", embeddings=True)     # the token table (and tied head) too
"""
from .embedding import QuantizedEmbedding
from .linear import QuantizedBackwardError, QuantizedLinear, quantized_matmul
from .llm_int8 import llm_int8_matmul
from .model import quantization_record, quantize, quantized_embeddings, quantized_layers
from .qlora import QuantizedLoRALinear, quantized_lora_linear
from .weight import FORMATS, QuantizedWeight

__all__ = ["quantize", "quantized_layers", "quantized_embeddings", "quantization_record",
           "QuantizedLinear", "QuantizedEmbedding", "QuantizedLoRALinear", "QuantizedWeight",
           "QuantizedBackwardError", "FORMATS", "quantized_matmul", "quantized_lora_linear",
           "llm_int8_matmul"]
