# RetinaNet with a data-driven MentorNet (MentorNet-DD, Jiang et al. ICML'18) on the embedded
# benchmark. The mentor is learned beforehand from a detector and the clean (meta) split:
#
#   python tools/train.py configs/retinanet_focal.py            # a detector to collect losses with
#   python tools/train_mentornet_dd.py configs/retinanet_focal.py \
#       work_dirs/retinanet_focal/iter_500.pth work_dirs/retinanet_focal/iter_1000.pth \
#       --out work_dirs/mentornet_dd/mentor.pth
#
# Building the weighter fails with a FileNotFoundError naming that command if the file is missing.
# Burn-in (all weights 1 up to epoch 18 of 100) as in the reference.
_base_ = ['./retinanet_focal.py']

model = dict(bbox_head=dict(type='mmreweight.ReweightRetinaHead'))

custom_hooks = [
    dict(type='mmreweight.MetaReweightHook',
         weighter=dict(type='mmreweight.MentorNetWeighter', curriculum='dd',
                       mentor_checkpoint='work_dirs/mentornet_dd/mentor.pth', percentile=0.7,
                       ema=0.5, burn_in=0.18)),
]
