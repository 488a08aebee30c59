"""Family of a marine-mammal genus, for selection by family (Deep Dive grouped species so)."""

from __future__ import annotations

GENUS_FAMILY = {
    # toothed whales and dolphins
    "Delphinus": "Delphinidae", "Stenella": "Delphinidae", "Tursiops": "Delphinidae",
    "Orcinus": "Delphinidae", "Pseudorca": "Delphinidae", "Globicephala": "Delphinidae",
    "Peponocephala": "Delphinidae", "Grampus": "Delphinidae", "Lagenorhynchus": "Delphinidae",
    "Lagenodelphis": "Delphinidae", "Steno": "Delphinidae", "Feresa": "Delphinidae",
    "Sotalia": "Delphinidae", "Cephalorhynchus": "Delphinidae", "Lissodelphis": "Delphinidae",
    "Physeter": "Physeteridae", "Kogia": "Kogiidae",
    "Delphinapterus": "Monodontidae", "Monodon": "Monodontidae",
    "Phocoena": "Phocoenidae", "Phocoenoides": "Phocoenidae", "Neophocaena": "Phocoenidae",
    "Ziphius": "Ziphiidae", "Mesoplodon": "Ziphiidae", "Hyperoodon": "Ziphiidae", "Berardius": "Ziphiidae",
    # baleen whales
    "Eubalaena": "Balaenidae", "Balaena": "Balaenidae",
    "Balaenoptera": "Balaenopteridae", "Megaptera": "Balaenopteridae",
    "Eschrichtius": "Eschrichtiidae",
    # pinnipeds and sirenians
    "Ommatophoca": "Phocidae", "Erignathus": "Phocidae", "Pagophilus": "Phocidae",
    "Histriophoca": "Phocidae", "Leptonychotes": "Phocidae", "Hydrurga": "Phocidae",
    "Lobodon": "Phocidae", "Phoca": "Phocidae", "Pusa": "Phocidae", "Halichoerus": "Phocidae",
    "Cystophora": "Phocidae", "Monachus": "Phocidae", "Mirounga": "Phocidae",
    "Odobenus": "Odobenidae", "Zalophus": "Otariidae", "Eumetopias": "Otariidae",
    "Callorhinus": "Otariidae", "Arctocephalus": "Otariidae",
    "Trichechus": "Trichechidae", "Dugong": "Dugongidae",
}


def family_of(scientific_name: str) -> str:
    genus = scientific_name.strip().split(" ")[0] if scientific_name.strip() else ""
    return GENUS_FAMILY.get(genus, "")
