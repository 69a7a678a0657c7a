"""The rules backend's radiology lexicon, written by this project for the ReXKG annotation convention.

Granularity follows ReXKG: one word per entity wherever possible ("small left pleural effusion" is four entities),
except for terms that mean nothing when split (devices such as "PICC line", "degenerative changes"). Plurals are
looked up through their singular; abbreviations map to the type of what they abbreviate.

>>> lookup(("pleural",)), lookup(("effusions",)), lookup(("picc", "line")), lookup(("ett",))
('anatomy', 'disorder', 'device', 'device')
"""

from __future__ import annotations

ANATOMY = set(
    """
lung lungs pleural pleura costophrenic angle angles hemithorax hemithoraces retrocardiac region regions zone zones
lobe lobes base bases basilar bibasilar apex apices apical apicolateral lingula lingular perihilar hilar hilum hila
heart cardiac cardiomediastinal mediastinum mediastinal hemidiaphragm hemidiaphragms diaphragm diaphragmatic
spine spinal vertebral vertebra vertebrae thoracic thoracolumbar bones bone osseous rib ribs clavicle clavicles
shoulder shoulders humerus trachea tracheal carina bronchus bronchi bronchial aorta aortic arch knob atrium
atrial ventricle ventricular stomach abdomen abdominal chest thorax parenchyma parenchymal airspace airspaces
interstitial interstitium vascular vasculature pulmonary subclavian jugular cavoatrial junction svc neck
tissue tissues subcutaneous segment fissure fissures axillary
hemithoracic paratracheal subdiaphragmatic gastric esophagus esophageal quadrant intrathoracic cardiopulmonary
structures
""".split()
)

DISORDERS = set(
    """
effusion pneumothorax consolidation opacity opacification atelectasis edema pneumonia cardiomegaly enlargement
congestion blunting nodule mass infiltrate fracture emphysema fibrosis scarring scar thickening calcification
granuloma hernia effacement collapse infection aspiration tortuosity hyperinflation pneumomediastinum lesion
abnormality abnormalities process kyphosis scoliosis deformity widening density densities haziness malignancy
metastasis metastases tumor bronchiectasis cyst air-fluid hydropneumothorax hemothorax empyema overload
hyperinflated
""".split()
)

DEVICES = set(
    """
tube catheter line pacemaker icd stent port drain wire wires lead leads clip clips valve pacer ett ngt ogt picc
cvc defibrillator coil coils filter hardware prosthesis
""".split()
)

PROCEDURES = set(
    """
mastectomy sternotomy thoracentesis cabg lobectomy thoracotomy intubation esophagectomy pneumonectomy
cholecystectomy biopsy resection vertebroplasty kyphoplasty thyroidectomy wedge surgery
""".split()
)

CONCEPTS = set(
    """
right left bilateral unilateral upper lower middle mid small large moderate mild mildly minimal severe trace tiny
acute chronic new increased increasing decreased decreasing unchanged stable improved improving worsened worsening
normal enlarged position appearance silhouette focal diffuse patchy multifocal streaky linear low high prominent
moderately persistent interval size borderline unremarkable clear expanded layering loculated central peripheral
posterior anterior lateral medial superior inferior dense heterogeneous hazy slight slightly extensive
predominantly grossly elevated elevation top-normal standard appropriate midline multiple several bibasal
subtle residual recurrent minimally markedly marked substantial overall similar calcified
median internal adjacent intact displaced right-sided left-sided contours
""".split()
)

# Multi-word terms kept as one entity (word tuples, lowercase). Longest match wins.
MULTIWORD = {
    ("degenerative", "changes"): "disorder",
    ("degenerative", "change"): "disorder",
    ("air", "bronchograms"): "disorder",
    ("pulmonary", "edema"): None,  # split on purpose: "pulmonary" anatomy + "edema" disorder
    ("endotracheal", "tube"): "device",
    ("nasogastric", "tube"): "device",
    ("orogastric", "tube"): "device",
    ("enteric", "tube"): "device",
    ("feeding", "tube"): "device",
    ("dobhoff", "tube"): "device",
    ("chest", "tube"): "device",
    ("chest", "tubes"): "device",
    ("tracheostomy", "tube"): "device",
    ("et", "tube"): "device",
    ("ng", "tube"): "device",
    ("og", "tube"): "device",
    ("picc", "line"): "device",
    ("central", "line"): "device",
    ("central", "venous", "catheter"): "device",
    ("central", "venous", "line"): "device",
    ("swan", "ganz", "catheter"): "device",
    ("swan-ganz", "catheter"): "device",
    ("pulmonary", "artery", "catheter"): "device",
    ("surgical", "clips"): "device",
    ("surgical", "clip"): "device",
    ("sternotomy", "wires"): "device",
    ("pacemaker", "leads"): "device",
    ("pacer", "leads"): "device",
    ("pigtail", "catheter"): "device",
    ("port-a-cath",): "device",
    ("lymph", "nodes"): "anatomy",
    ("lymph", "node"): "anatomy",
    ("vena", "cava"): "anatomy",
    ("soft", "tissues"): "anatomy",
    ("soft", "tissue"): "anatomy",
    ("costophrenic", "angle"): None,
    ("lung", "volumes"): None,
    ("ground", "glass"): "concept",
    ("ground-glass",): "concept",
}
MAX_TERM_WORDS = max(len(k) for k in MULTIWORD)
MULTIWORD_FIRST_WORDS = frozenset(k[0] for k in MULTIWORD if len(k) > 1)

_SINGLE = {}
for _words, _kind in (
    (ANATOMY, "anatomy"),
    (DISORDERS, "disorder"),
    (DEVICES, "device"),
    (PROCEDURES, "procedure"),
    (CONCEPTS, "concept"),
):
    for _word in _words:
        _SINGLE.setdefault(_word, _kind)

# Concepts that give place or side: they modify the anatomy that follows them, not the finding.
LOCATIVE_CONCEPTS = frozenset(
    "right left bilateral unilateral upper lower middle mid central peripheral posterior anterior lateral medial "
    "superior inferior bibasal internal median right-sided left-sided".split()
)


# Adverbs of degree modify the descriptor that follows them ("mildly enlarged").
DEGREE_ADVERBS = frozenset("mildly moderately minimally markedly slightly severely grossly".split())


def _singular(word: str) -> str | None:
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith("es") and word[:-2] in _SINGLE:
        return word[:-2]
    if word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return None


def lookup(words: tuple[str, ...]) -> str | None:
    """Kind of a lowercase word sequence: anatomy, disorder, device, procedure, concept, or None.

    >>> lookup(("opacities",)), lookup(("degenerative", "changes")), lookup(("banana",))
    ('disorder', 'disorder', None)
    """
    if len(words) > 1:
        return MULTIWORD.get(words)
    if words in MULTIWORD:
        return MULTIWORD[words]
    word = words[0]
    if word in _SINGLE:
        return _SINGLE[word]
    singular = _singular(word)
    return _SINGLE.get(singular) if singular else None
