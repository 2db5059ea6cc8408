"""recllm.models"""
