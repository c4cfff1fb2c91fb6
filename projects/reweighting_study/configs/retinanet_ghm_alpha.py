# Study variant 'ghm_alpha': configs/retinanet_ghm.py with focal loss's class balance in GHM-C:
# positives' harmonizing weights times 0.25, negatives' times 0.75, rescaled to the same sum.
# Why: on a trained detector GHM-C gives negatives 14% of its classification gradient where focal
# loss gives them about half; confusable classes (Fashion-MNIST) need the negatives' gradient.
_base_ = ['../../../configs/retinanet_ghm.py']

model = dict(bbox_head=dict(loss_cls=dict(alpha=0.25)))
