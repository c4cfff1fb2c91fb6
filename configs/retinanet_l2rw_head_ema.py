# L2RW with theta = the head's classification branch and a moving average of the clean gradient
# (clean_grad_momentum=0.9: about 19 clean batches of 8 images at the cost of one; an extension,
# not in the paper). Why: tools/diagnose.py --clean-batches on the 40%-noise study run found one
# clean batch's weights a coin flip on which batch was drawn; averaging over clean batches is what
# separated clean from noisy positives (theta = head: AUC 0.77 with 32 clean images, 0.89 averaged
# over 4 such batches). Study variant 'l2rw_head_ema'; configs/retinanet_l2rw_head.py is the
# same without the average and with 32 clean images per step.
_base_ = ['./retinanet_l2rw.py']

custom_hooks = [
    dict(type='mmreweight.MetaReweightHook',
         weighter=dict(type='mmreweight.L2RWWeighter', theta='head', normalise='foreground',
                       clean_grad_momentum=0.9),
         clean_dataloader={{_base_.clean_dataloader}}, interval=1),
]
