"""Data folders: layout (reading and splitting them), check (checking one), download (the Huawei set, link-or-copy)."""
