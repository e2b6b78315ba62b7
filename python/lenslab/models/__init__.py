"""Model wrappers: any torch module, and Hugging Face language models."""
