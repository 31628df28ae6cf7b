"""The foundation-model cards. One `@register` function per FM; nothing else to touch.

Facts were checked against each model's Hugging Face card / config.json and the reference loaders
in MahmoodLab/TRIDENT (`patch_encoder_models/load.py`) and the CONCH repository; `source` says which.
"""

from raypath.encoders.card import IMAGENET_MEAN, IMAGENET_STD, ModelCard, PoolerSpec
from raypath.encoders.registry import register

SWIGLU = {"mlp_layer": "swiglu_packed", "act_layer": "silu"}
NC_ND_GATED = "CC-BY-NC-ND-4.0; gated (HF access request, institutional email)"


@register
def uni() -> ModelCard:
    return ModelCard(
        name="uni", title="UNI", family="uni", architecture="vit_large_patch16_224",
        timm_kwargs={"init_values": 1e-5, "dynamic_img_size": True}, hub_id="MahmoodLab/UNI",
        hub_files=("pytorch_model.bin",), input_size=224, mean=IMAGENET_MEAN, std=IMAGENET_STD,
        embed_dim=1024, mpp=0.5, output="cls", licence=NC_ND_GATED,
        mpp_note="pretrained on 20x (~0.5 um/px) Mass-100K tiles (256/512 px); inference at 224",
        source="hf MahmoodLab/UNI card + config.json; TRIDENT uni_v1 (timm kwargs, Resize 224)",
    )


@register
def uni2_h() -> ModelCard:
    return ModelCard(
        name="uni2-h", title="UNI2-h", family="uni2-h", architecture="vit_giant_patch14_224",
        timm_kwargs={"patch_size": 14, "depth": 24, "num_heads": 24, "embed_dim": 1536,
                     "init_values": 1e-5, "mlp_ratio": 2.66667 * 2, "no_embed_class": True,
                     "reg_tokens": 8, "dynamic_img_size": True, **SWIGLU},
        hub_id="MahmoodLab/UNI2-h", hub_files=("pytorch_model.bin",), input_size=224,
        mean=IMAGENET_MEAN, std=IMAGENET_STD, embed_dim=1536, mpp=0.5, output="cls",
        licence=NC_ND_GATED, mpp_note="20x (~0.5 um/px), 256 px tiles resized to 224",
        notes="'ViT-H' by parameter count (681M) but 1536 wide, 24 blocks, 8 registers, SwiGLU",
        source="hf MahmoodLab/UNI2-h card (timm_kwargs); TRIDENT uni_v2",
    )


@register
def virchow2() -> ModelCard:
    return ModelCard(
        name="virchow2", title="Virchow2", family="virchow2", architecture="vit_huge_patch14_224",
        timm_kwargs={"init_values": 1e-5, "reg_tokens": 4, "mlp_ratio": 5.3375, "global_pool": "",
                     "dynamic_img_size": True, **SWIGLU},
        hub_id="paige-ai/Virchow2", input_size=224, mean=IMAGENET_MEAN, std=IMAGENET_STD,
        embed_dim=2560, mpp=0.5, output="cls+mean", interpolation="bicubic", licence=NC_ND_GATED,
        mpp_note="trained on mixed 5x/10x/20x/40x (2.0-0.25 um/px); 20x is the usual choice",
        notes="embedding = CLS (1280) ++ mean of the 256 patch tokens (4 registers excluded)",
        source="hf paige-ai/Virchow2 card (timm kwargs, CLS+mean rule); TRIDENT virchow2",
    )


def _h_optimus(version: int, licence: str) -> ModelCard:
    return ModelCard(
        name=f"h-optimus-{version}", title=f"H-optimus-{version}", family=f"h-optimus-{version}",
        architecture="vit_giant_patch14_reg4_dinov2",
        timm_kwargs={"init_values": 1e-5, "dynamic_img_size": False},
        hub_id=f"bioptimus/H-optimus-{version}", input_size=224,
        mean=(0.707223, 0.578729, 0.703617), std=(0.211883, 0.230117, 0.177517),
        embed_dim=1536, mpp=0.5, output="cls", licence=licence,
        mpp_note="224 px tiles at 0.5 um/px (20x)",
        notes="ViT-g/14, 40 blocks, 4 registers, SwiGLU (timm defaults of the architecture)",
        source=f"hf bioptimus/H-optimus-{version} card + config.json; TRIDENT hoptimus{version}",
    )


@register
def h_optimus_0() -> ModelCard:
    return _h_optimus(0, "Apache-2.0; not gated")


@register
def h_optimus_1() -> ModelCard:
    return _h_optimus(1, "Bioptimus licence (HF 'other'); gated, access on request")


@register
def phikon_v2() -> ModelCard:
    return ModelCard(
        name="phikon-v2", title="Phikon-v2", family="phikon-v2", architecture="vit_large_patch16_224",
        timm_kwargs={"init_values": 1e-5}, hub_id="owkin/phikon-v2", hub_files=("model.safetensors",),
        weights_format="hf-dinov2", input_size=224, mean=IMAGENET_MEAN, std=IMAGENET_STD,
        embed_dim=1024, mpp=0.5, output="cls", licence="Owkin non-commercial licence; not gated",
        mpp_note="20x (0.5 um/px) PANCAN-XL tiles",
        notes="published as HF transformers Dinov2Model (ViT-L/16, LayerScale, no registers); "
              "raypath converts the keys to timm, no transformers dependency",
        source="hf owkin/phikon-v2 card (ViT-L/16 via DINOv2, CLS of last_hidden_state); TRIDENT phikon_v2",
    )


@register
def hibou_l() -> ModelCard:
    return ModelCard(
        name="hibou-l", title="Hibou-L", family="hibou-l", architecture="vit_large_patch14_reg4_dinov2",
        timm_kwargs={}, hub_id="histai/hibou-L", hub_files=("model.safetensors",),
        weights_format="hf-dinov2", input_size=224, mean=(0.7068, 0.5755, 0.722),
        std=(0.195, 0.2316, 0.1816), embed_dim=1024, mpp=0.5, output="cls", interpolation="bicubic",
        licence="Apache-2.0; gated (accept conditions, share contact details)",
        mpp_note="magnification not stated on the card; 20x (0.5 um/px) as in public benchmarks",
        notes="HistAI's DINOv2-with-registers (trust_remote_code); pooler_output = normed CLS; "
              "raypath converts the keys to timm (CLS position embedding folded into the CLS token)",
        source="hf histai/hibou-L card; TRIDENT hibou_l (mean/std, bicubic 224, pooler_output)",
    )


@register
def conch() -> ModelCard:
    return ModelCard(
        name="conch", title="CONCH", family="conch", architecture="vit_base_patch16_224",
        timm_kwargs={"dynamic_img_size": True}, hub_id="MahmoodLab/CONCH",
        hub_files=("pytorch_model.bin",), weights_format="conch", input_size=448,
        mean=(0.48145466, 0.4578275, 0.40821073), std=(0.26862954, 0.26130258, 0.27577711),
        embed_dim=512, mpp=0.5, output="attn-pool", pooler=PoolerSpec(dim=512, heads=8, queries=1),
        interpolation="bicubic", licence=NC_ND_GATED,
        mpp_note="20x (0.5 um/px); TRIDENT reads 512 px tiles and resizes to 448",
        notes="vision tower of a CoCa model: ViT-B/16 trunk -> contrastive attentional pooler -> "
              "LayerNorm = encode_image(proj_contrast=False), the features CONCH recommends for "
              "downstream models; output 'attn-pool+proj' gives the zero-shot (projected) space",
        source="github mahmoodlab/CONCH conch_ViT-B-16.json + vision_tower.py; hf MahmoodLab/CONCH card",
    )


@register
def prov_gigapath() -> ModelCard:
    return ModelCard(
        name="prov-gigapath", title="Prov-GigaPath", family="prov-gigapath",
        architecture="vit_giant_patch14_dinov2",
        timm_kwargs={"patch_size": 16, "embed_dim": 1536, "depth": 40, "num_heads": 24,
                     "init_values": 1e-5, "mlp_ratio": 5.33334},
        hub_id="prov-gigapath/prov-gigapath", hub_files=("pytorch_model.bin",), input_size=224,
        mean=IMAGENET_MEAN, std=IMAGENET_STD, embed_dim=1536, mpp=0.5, output="cls",
        interpolation="bicubic", crop_fraction=224 / 256,
        licence="Apache-2.0; gated (research use only, accept terms)",
        mpp_note="256 px tiles at 0.5 um/px, resized to 256 and centre-cropped to 224",
        notes="tile encoder only; its config overrides the timm name's patch 14 with patch 16",
        source="hf prov-gigapath/prov-gigapath card + config.json (timm hf_hub); TRIDENT gigapath",
    )
