from oro_graph.models import AgentVersionState
from oro_graph.services import agents, leaderboard

from tests.factories import claim, complete, make_world, submit


def test_lifecycle_submit_to_eligible(runtime):
    # given
    world = make_world(runtime)
    admission = submit(runtime, world.miners[0], "alpha")
    assert admission.status == "ACCEPTED"
    # when
    c1 = claim(runtime, world.validators[0])
    c2 = claim(runtime, world.validators[1])
    assert claim(runtime, world.validators[2]) is None  # both slots taken
    complete(runtime, c1.run.id, world.validators[0], score=0.4)
    done = complete(runtime, c2.run.id, world.validators[1], score=0.6)
    # then
    assert done.became_eligible and abs(done.final_score - 0.5) < 1e-9
    version = runtime.db.call(agents.get_version, admission.agent_version_id)
    assert version.state == AgentVersionState.ELIGIBLE
    board = runtime.db.call(leaderboard.leaderboard_page)
    assert [r.version.id for r in board.rows] == [admission.agent_version_id]
    top = runtime.db.call(leaderboard.top_agent, settings=runtime.settings)
    assert top.version.id == admission.agent_version_id
