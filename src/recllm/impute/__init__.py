"""recllm.impute"""
