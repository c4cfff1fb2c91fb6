# RetinaNet with class-balanced focal loss (Cui et al. CVPR'19): per-class weights from the effective
# number of samples, (1 - beta) / (1 - beta^n_c), normalised to sum to the number of classes. The
# per-class instance counts n_c are read from the training set's annotations before training by
# ClassCountsHook and kept in the loss's buffer (so checkpoints carry them).
_base_ = ['./retinanet_focal.py']

model = dict(
    bbox_head=dict(
        loss_cls=dict(_delete_=True, type='CBFocalLoss', use_sigmoid=True,
                      num_classes={{_base_.num_classes}},
                      beta=0.9999, gamma=2.0, loss_type='focal', loss_weight=1.0)))
custom_hooks = [dict(type='ClassCountsHook')]
