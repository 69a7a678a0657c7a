"""The rules backend's radiology lexicon, written by this project for the ReXKG annotation convention.

Granularity follows ReXKG's guideline: one word per entity wherever possible ("small left pleural effusion" is four
entities, "central venous catheter" is a concept, an anatomy word and a device, "sternotomy wires" a procedure and a
device), except for names that mean nothing when split ("PICC line", "Swan-Ganz catheter", "degenerative changes").
Plurals are looked up through their singular (pneumothoraces too); abbreviations map to the type of what they
abbreviate (PTX, CHF, COPD, ARDS, ETT, NGT). The examination
itself counts as a procedure (views, projections, radiograph, study), as do actions on devices (placement, removal)
and surgeries; technique words (portable, upright, frontal) and comparison words (prior, change, interval) are
concepts; the word "size" is a size.

>>> lookup(("pleural",)), lookup(("effusions",)), lookup(("picc", "line")), lookup(("ett",)), lookup(("views",))
('anatomy', 'disorder', 'device', 'device', 'procedure')
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
structures wall walls tip endotracheal nasogastric orogastric enteric venous artery arteries vein veins breast
breasts hiatal pericardial epicardial biapical markings inlet duodenum axilla ij gastroesophageal brachiocephalic
humeral cervical annular mitral bowel intraperitoneal retrosternal stripe nipple skin fat peribronchial extremity
coronary nerve vagal azygous azygos lobar intra-aortic tricuspid sternum sternal scapula scapulae spinous
retroperitoneal pleural-based costal costovertebral upper-abdominal colon
""".split()
)

DISORDERS = set(
    """
effusion pneumothorax consolidation opacity opacification atelectasis edema pneumonia cardiomegaly enlargement
congestion blunting nodule mass infiltrate fracture emphysema fibrosis scarring scar thickening calcification
granuloma hernia effacement collapse infection aspiration tortuosity hyperinflation pneumomediastinum lesion
abnormality abnormalities process kyphosis scoliosis deformity widening density densities haziness malignancy
metastasis metastases tumor bronchiectasis cyst air-fluid hydropneumothorax hemothorax empyema overload
hyperinflated changes fluid flattening lymphadenopathy hematoma deviation prominence osteopenia dextroscoliosis
levoscoliosis distention distension engorgement cuffing bronchitis tuberculosis disease plaque plaques unfolding
lucency hypertension cephalization collection hyperexpansion bleb blebs bulla bullae cavitation cavity
ptx chf copd ards pneumoperitoneum shift tension air elevation widened
""".split()
)

DEVICES = set(
    """
tube catheter line pacemaker icd stent port drain wire wires lead leads clip clips valve pacer ett ngt ogt picc
cvc defibrillator coil coils filter hardware prosthesis prostheses implant implants pump stimulator devices
electrode electrodes staples sutures mesh
""".split()
)

PROCEDURES = set(
    """
mastectomy sternotomy thoracentesis cabg lobectomy thoracotomy intubation esophagectomy pneumonectomy
cholecystectomy biopsy resection vertebroplasty kyphoplasty thyroidectomy wedge surgery
radiograph radiographs study studies exam exams examination examinations film films view views image images pa ap
ct placement removal insertion repositioning reposition extubation intubation intubated replacement postsurgical
post-surgical postoperative post-operative tracheostomy fusion arthroplasty embolization tavr tavi cabg
laminectomy gastrostomy thoracoscopy pleurodesis radiation
""".split()
)

CONCEPTS = set(
    """
right left bilateral unilateral upper lower middle mid small large moderate mild mildly minimal severe trace tiny
acute chronic new increased increasing decreased decreasing unchanged stable improved improving worsened worsening
normal enlarged position appearance silhouette focal diffuse patchy multifocal streaky linear low high prominent
moderately persistent interval borderline unremarkable clear expanded layering loculated central peripheral
posterior anterior lateral medial superior inferior dense heterogeneous hazy slight slightly extensive
predominantly grossly elevated elevation top-normal standard appropriate midline multiple several bibasal
subtle residual recurrent minimally markedly marked substantial overall similar calcified
median internal adjacent intact displaced right-sided left-sided contours
prior change interval significant increase decrease improvement redemonstration redemonstrated portable frontal
upright single semi-erect semi-upright supine erect partially limited tortuous old healed free aeration overlying
amount both early smaller larger sharp compressive frank atherosclerotic multilevel flattened kinked coiled aligned
suboptimal rotated rotation inspiration follow-up little near complete probable equivocal innumerable metastatic
cavitary nodular granulomatous subsegmental reticular plate-like minor major main distal proximal dual-chamber
implantable external prosthetic expected descending configuration development shadow fold active incidentally
rightward leftward hyperexpanded bilaterally well resolution sixth fifth fourth seventh eighth ninth tenth
third second first visualized evident diffusely volume volumes
""".split()
)

SIZES = set(
    """
size
""".split()
)

# Multi-word terms kept as one entity (word tuples, lowercase). Longest match wins.
MULTIWORD = {
    ("degenerative", "changes"): "disorder",
    ("degenerative", "change"): "disorder",
    ("air", "bronchograms"): "disorder",
    ("feeding", "tube"): "device",
    ("dobhoff", "tube"): "device",
    ("et", "tube"): "device",
    ("ng", "tube"): "device",
    ("og", "tube"): "device",
    ("picc", "line"): "device",
    ("swan", "ganz", "catheter"): "device",
    ("swan-ganz", "catheter"): "device",
    ("swan-ganz",): "device",
    ("surgical", "clips"): "device",
    ("surgical", "clip"): "device",
    ("pigtail", "catheter"): "device",
    ("port-a-cath",): "device",
    ("support", "devices"): "device",
    ("ecg", "leads"): "device",
    ("monitoring", "leads"): "device",
    ("loop", "recorder"): "device",
    ("balloon", "pump"): "device",
    ("pacing", "wires"): "device",
    ("lymph", "nodes"): "anatomy",
    ("lymph", "node"): "anatomy",
    ("vena", "cava"): "anatomy",
    ("soft", "tissues"): "anatomy",
    ("soft", "tissue"): "anatomy",
    ("ground", "glass"): "concept",
    ("ground-glass",): "concept",
}
# Every entry names an entity: a phrase meant to be split is simply not listed (its words are looked up one by one).
# A kind-less entry once swallowed "pulmonary edema" whole, so the lexicon refuses one at import.
if not all(MULTIWORD.values()):
    raise ValueError(f"rexkg lexicon: MULTIWORD entries without a kind: {[k for k, v in MULTIWORD.items() if not v]}")
MAX_TERM_WORDS = max(len(k) for k in MULTIWORD)
MULTIWORD_FIRST_WORDS = frozenset(k[0] for k in MULTIWORD if len(k) > 1)

_SINGLE = {}
for _words, _kind in (
    (ANATOMY, "anatomy"),
    (DISORDERS, "disorder"),
    (DEVICES, "device"),
    (PROCEDURES, "procedure"),
    (CONCEPTS, "concept"),
    (SIZES, "size"),
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
    if word.endswith("aces") and word[:-3] + "x" in _SINGLE:  # pneumothoraces, hemithoraces
        return word[:-3] + "x"
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
