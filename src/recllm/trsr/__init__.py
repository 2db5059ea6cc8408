"""recllm.trsr"""
