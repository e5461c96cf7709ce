# SyncBN for multi-GPU runs: add '../_base_/sync_bn.py' (or '_base_/sync_bn.py' from configs/) to a
# config's _base_ list, or pass --cfg-options sync_bn=torch. MMEngine converts every BatchNorm to
# torch.nn.SyncBatchNorm when it wraps the model for distributed training (and reverts them in
# single-process runs). GPUs only: on CPU runs acsdet warns and keeps per-process BatchNorm.
sync_bn = 'torch'
