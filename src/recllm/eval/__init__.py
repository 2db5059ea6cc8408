"""recllm.eval"""
