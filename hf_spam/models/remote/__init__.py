"""Model code that hf_spam saves beside a classifier's weights, so transformers can load it as custom code."""
