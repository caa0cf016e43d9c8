"""Model files in and out (`numpyllm.hub`).

  safetensors.py    the safetensors format: a JSON header and raw little-endian arrays,
                    read whole or through a memory map one tensor at a time
  bfloat16.py       bfloat16 <-> float32 by bit manipulation (NumPy has no bfloat16)
  sharded.py        a model directory's weights: one file, or shards and their index
  hfconfig.py       config.json, read strictly
  architectures.py  the table of Hugging Face architectures: configs and tensor names
  gpt2.py           GPT2LMHeadModel <-> numpyllm's GPT
  llama.py          LlamaForCausalLM, Qwen2ForCausalLM, MistralForCausalLM <-> Llama
  gpt_neox.py       GPTNeoXForCausalLM <-> numpyllm's GPT with RoPE
  pretrained.py     load_pretrained / save_pretrained: Hugging Face model directories
  peft.py           save_adapter / load_adapter: LoRA adapters in PEFT's file layout
  errors.py         PretrainedError, NotExpressible

    model, tokenizer = load_pretrained("path/to/gpt2")     # a local directory
    save_pretrained(model, tokenizer, "out/my-gpt")        # transformers can load it
"""
from .errors import NotExpressible, PretrainedError
from .pretrained import load_pretrained, save_pretrained
from .safetensors import SafetensorsError, SafetensorsFile, load_file, save_file

__all__ = ["load_pretrained", "save_pretrained", "PretrainedError", "NotExpressible",
           "load_file", "save_file", "SafetensorsFile", "SafetensorsError"]
