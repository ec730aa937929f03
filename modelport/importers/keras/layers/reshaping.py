"""reshaping"""
