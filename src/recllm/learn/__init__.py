"""recllm.learn"""
